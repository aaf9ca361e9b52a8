from hydra.plugins.sweeper import Sweeper
class RegsweepOptunaSweeper(Sweeper):
    def __init__(self, **kw): print("INIT", kw)
    def setup(self, *, hydra_context, task_function, config): pass
    def sweep(self, arguments): print("ARGS", arguments)
