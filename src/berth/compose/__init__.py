"""berth.compose"""
