"""Monitoring: drift of served traffic against the champion's reference, reports, incidents."""
