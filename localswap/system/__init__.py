"""This machine: will torch's CUDA build run on the card and driver (cuda_support.py), how
many CPU threads are free to use (threads.py), small caches (cache.py). Below the stages: it
imports none of them (the `doctor` self-check, which runs them all, is bench/doctor.py)."""
