"""Reporting: the HTML report of a finished search (`report`) and its figures (`plots`), from
the files a search wrote. May import `tuner.results`, `tuner.search` (to read the study) and
`trainable`; never Ray's execution."""
