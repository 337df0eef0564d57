from connote.cli import main

raise SystemExit(main())
