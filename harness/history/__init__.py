"""The results history: every deploy and farm run recorded in a database, queried by `edgeloop history`,
and a baseline for report.diff taken from it (docs/farm.md, "History").

    location.py  where the history is (--history, $EDGELOOP_HISTORY, run.history, ./.edgeloop/history.sqlite)
    store.py     one connection interface over SQLite and PostgreSQL; transactions; schema migrations
    schema.py    the tables, as a list of migrations
    record.py    a report.json becomes one run and its jobs, in one transaction, once (history import)
    query.py     the recorded jobs, filtered
    baseline.py  `--baseline history[:N]`: the last N passing runs of each job, in report.diff's form
    table.py     the terminal's table; trend.py and plot.py the HTML trend page
"""
