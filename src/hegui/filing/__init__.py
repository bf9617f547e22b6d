"""The filing package (Art. 17; ``spec/regulation.md`` §3.6) and the inspection evidence export
(Art. 19): ``hegui filing export`` and ``hegui evidence export``.
"""
