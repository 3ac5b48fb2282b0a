"""The imperative shell: one run of the sidecar, and the program around it.

Start-up, racing the monitors, deciding, writing, stops and exit codes (engine and
start-up); wiring, signals and the command line (app, cli); the termination message.
The only package that may import all the others.
"""
