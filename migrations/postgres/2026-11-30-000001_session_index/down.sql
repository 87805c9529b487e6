DROP TABLE session_index;
