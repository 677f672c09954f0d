from afqmc.cli import main

raise SystemExit(main())
