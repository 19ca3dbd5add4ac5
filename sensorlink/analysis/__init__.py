"""Analysis: signal processing on samples, and the stage that turns samples into new Readings
published back into the hub (direction of arrival and beam steering now; regions, bands and
alarms next). It imports the core only.
"""
