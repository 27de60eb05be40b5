from waitline.cli import main

raise SystemExit(main())
