from autoscaler.lab.standin.app import main

raise SystemExit(main())
