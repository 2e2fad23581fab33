from pairsearch.cli import main

raise SystemExit(main())
