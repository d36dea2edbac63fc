module coral.test/heap

go 1.19
