from .run import main  # run.py fixes the thread settings before NumPy loads

raise SystemExit(main())
