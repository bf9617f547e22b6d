"""Complaints, reports (举报) and personal-information requests as cases with a due date, and
incidents with their report to the authority (Arts. 11, 14, 15)."""
