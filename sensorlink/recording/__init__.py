"""The recording sink and its readers, as python-can keeps its readers, writers and player in
``can/io/``: MCAP messages, the recorder, the reader, recovery of cut files, export, and the
replay source built on the reader.
"""
