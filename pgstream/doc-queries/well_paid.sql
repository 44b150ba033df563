-- Employees earning more than 100k.
SELECT id, name, salary
FROM employees
WHERE salary > 100000
