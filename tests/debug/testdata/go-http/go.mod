module coral.test/quotes

go 1.19
