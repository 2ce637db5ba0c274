"""The workshop's curriculum: exercises with their references and graders, progress, notebook runs, incidents.

It sits above `analysis` (the library that reads and computes observability data) and below
`lab`, whose commands run it; the notebooks import both.
"""
