from regsweep.aggregate.cli import main

raise SystemExit(main())
