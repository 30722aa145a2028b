"""Streams: the Faust app and its agents, topics, and the kafka-python client."""
