"""berth.archive"""
