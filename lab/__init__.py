"""`lab`: the no-Docker local launcher that runs the whole stack as processes."""
