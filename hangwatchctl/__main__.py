from hangwatchctl.cli import main

main()
