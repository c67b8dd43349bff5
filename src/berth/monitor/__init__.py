"""berth.monitor"""
