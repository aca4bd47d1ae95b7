"""Bench group ``reference``: every method's training step against its reference implementation.

Each module here rebuilds the parts of one method's reference code that decide its cost, from the
facts in the method specs (the reference code itself is not copied): the layers, the way they are
stepped over time, the loss and the optimisers. :mod:`bench.reference.harness` runs both sides in
one process, on the same weights and the same batches, checks that the first step's losses agree
and then times the two steps alternately.
"""
