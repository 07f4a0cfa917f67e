"""Cohort outcome analysis: sweet spots, fibre filtering and cross-validated prediction from batch outputs.

``vta group BATCH_DIR --outcome COLUMN`` (:func:`vta.cohort.run.run_group`) works on the
finished outputs of ``vta batch`` - ``group.csv`` with the manifest's subject variables
(outcomes, covariates) and every subject-hemisphere's ``vta.nii.gz``,
``efield_norm.nii.gz`` and ``tracts.csv`` - and never recomputes them.

Modules (layer 6, beside :mod:`vta.studies`):

``table``
    :func:`~vta.cohort.table.load_cohort`: analysis units (subjects or hemispheres),
    outcome (continuous or binary), covariates, the units dropped and why.
``voxels``
    :class:`~vta.cohort.voxels.VoxelData`: every image sampled once onto one MNI lattice,
    sparse coverage, dense blocks per chunk of voxels (memory bounded).
``voxel_stats``
    :func:`~vta.cohort.voxel_stats.sweet_spot`: Welch t / rank-sum z (VTA) and
    Pearson / Spearman as t (E-field) maps, vectorised over permutations, with
    max-statistic FWE control; chunks run as Dask tasks with a client.
``stats``
    The test statistics (Welch t, rank-sum z, correlation as t), permutations and
    max-statistic FWE p-values shared by the voxel, fibre and prediction analyses.
``fibres``, ``predict``, ``figures``
    Fibre filtering per fibre of a tract, cross-validated prediction, and their figures.
``report``, ``run``
    The sweet-spot slice figures and the Markdown/HTML report; the orchestration that
    writes one output folder atomically.
``synthetic``, ``synthetic_fields``
    Synthetic cohorts with a planted truth, in the batch folder format.
"""
