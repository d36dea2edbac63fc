module coral.test/burn

go 1.19
