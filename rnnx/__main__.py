from rnnx.cli import main

main(prog_name="rnnx")
