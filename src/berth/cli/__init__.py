"""berth.cli"""
