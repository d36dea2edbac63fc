module coral.bench/loop

go 1.19
