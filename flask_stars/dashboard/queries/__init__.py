"""What the dashboard reads, one module per page: aggregate SQL and keyset pages.

Nothing here loops over ledger rows in Python: totals are summed by the database, lists
are pages of at most ``paging.PAGE_SIZE`` rows taken by id (``WHERE id < :before ORDER BY
id DESC``, the primary key), never by OFFSET, so a page costs the same at row 10 and row
10^6. Reads the CLI shares (the revenue per day and pack, the failed updates) are in
``flask_stars.reports``.
"""
