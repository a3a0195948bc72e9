"""The jobs behind the `real3d` subcommands (generate, fit, export, bench, toyworld, train-prior, sample, info).

They sit above the library (config, field, cameras, render, guidance, priors, system, export, toyworld): a job
imports library modules and the argparse helpers of `jobs.args`; no library module imports a job.
"""
