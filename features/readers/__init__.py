"""Readers: one module per kind of source, each turning files into validated `OrderLines` and a quarantine.

`features.sources.load` picks the reader a data config's `format` names; the readers share
`files` (finding files, their digest, side tables, `SourceError`) and the tabular readers share
`normalise` (mapping, parsing and checking rows) and `dates` (order dates, row by row). Nothing here
imports `features.sources`.
"""
