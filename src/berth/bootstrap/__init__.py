"""berth.bootstrap"""
