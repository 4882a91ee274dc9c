// CondensationFS
