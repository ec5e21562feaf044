"""Evaluation: transfer tables (sources x methods x targets), the lambda sweep, reproductions.

`methods` puts AEG-GC generators and the gradient baselines behind one interface, `cache` keeps
crafted sets on disk, `transfer` builds the table, `sweep` the lambda curve, `report` and
`plots` write them, and `reproduce` runs a data set's whole protocol
(agscm.eval.datasets: MNIST, CIFAR-10) by its `plan`.
"""
