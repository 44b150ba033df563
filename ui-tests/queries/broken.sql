SELECT e.id, e.nmae
FROM employees e
WHERE e.salary > 100000
