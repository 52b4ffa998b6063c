# cython: language_level=3
"""Forwarding: ptengine._core became the package ptengine.core (entry.pxd for the encoding,
frames, tables, walk, walkers, proc, pagetables). Kept for one release because the README
advertised ``cimport ptengine._core``: every name it declared is cimported here, from its
module, so ``from ptengine._core cimport ...`` compiles unchanged. New code cimports from
ptengine.core.* directly.
"""
from ptengine.core.entry cimport *
from ptengine.core.frames cimport *
from ptengine.core.tables cimport *
from ptengine.core.walk cimport *
from ptengine.core.walkers cimport *
from ptengine.core.proc cimport pt_pagemap
from ptengine.core.pagetables cimport Frames, PageTables
