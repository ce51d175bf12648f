from hangwatchctl.cli import main

main(prog_name="hangwatchctl")
