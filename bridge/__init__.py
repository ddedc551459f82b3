"""bridge: puts a hosted AI chatbot into Slack and Discord."""

__version__ = "0.1.0"
