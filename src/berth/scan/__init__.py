"""berth.scan"""
