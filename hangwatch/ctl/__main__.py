from hangwatch.ctl.cli import main

main()
