"""Pure computation: numpy, pandas and scipy over arrays. No I/O, no other coinql layer."""
