"""A ShinyProxy 3.2 stand-in for the lab: sessions as Swarm services, actuator, usage events.

It reproduces what the autoscaler reads from a real ShinyProxy: the per-session Swarm services
and their container labels, the start timeout, crash accounting, the Micrometer exposition and
the InfluxDB usage lines. It does not proxy HTTP traffic to the apps.
"""
