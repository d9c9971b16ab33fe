"""This machine: will torch's CUDA build run on the card and driver (cuda_support.py), the
`doctor` self-check (doctor.py), and how many CPU threads are free to use (threads.py)."""
