"""Annotation records for Art. 8 and GB/T 45654 §5.3: versioned rules (functional and safety kept
apart), annotators and their qualifications, batches with role separation, sampling and review.

:mod:`~hegui.annotation.summary` is the shape the filing package reads (``hegui annotation report``).
"""
