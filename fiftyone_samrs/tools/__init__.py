"""Around the SDK: the ``samrs`` command line (:mod:`.cli`, :mod:`.commands`),
the embedded database check (:mod:`.db`), the App plugin installer
(:mod:`.plugin_install`) and the demo (:mod:`.demo`).
"""
