"""The Nova scheduler plugin: the host filter, the weigher and the flavor extra-spec validators
(those three import Nova: ``pip install 'arm-cpu-filter[nova]'``), and what they share."""
