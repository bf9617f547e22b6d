"""The web pages served by the gateway's app: the public portal (and, later, the staff console).
Server-rendered Jinja2 templates that work without JavaScript, escape everything and carry CSRF tokens."""
