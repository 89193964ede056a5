"""`dckd-test` / `python test.py -opt X.yml`: BasicSR's test pipeline with dckd registered.
Results go under ./results/<name>."""
import os


def main():
    from dckd.registration import register_all
    register_all()
    import basicsr.test

    basicsr.test.test_pipeline(os.getcwd())


if __name__ == '__main__':
    main()
