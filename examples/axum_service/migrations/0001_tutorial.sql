CREATE TABLE departments (id SERIAL PRIMARY KEY, name TEXT NOT NULL, parent_id INT REFERENCES departments(id));
CREATE TABLE employees (id SERIAL PRIMARY KEY, name TEXT NOT NULL,
    department_id INT NOT NULL REFERENCES departments(id), salary NUMERIC(10,2) NOT NULL);
