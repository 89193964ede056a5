"""Test with dckd's models registered: python test.py -opt options/test/test_dckd_swinir_x4.yml"""
from dckd.test import main

if __name__ == '__main__':
    main()
