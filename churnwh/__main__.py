from churnwh.cli import main

main()
