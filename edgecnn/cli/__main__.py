from edgecnn.cli import entry

entry()
