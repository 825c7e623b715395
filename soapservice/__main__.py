from soapservice.cli import main

raise SystemExit(main())
